"""Local stand-ins for the providers Herald talks to, each speaking the real protocol."""
