"""Live transports: SSE and WebSocket framing and connection lifecycle, over `core.hub`."""
