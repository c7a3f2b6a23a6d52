"""The browser files (pages, herald.js, the bell): data, shipped inside the herald_server
package and read with importlib.resources, so an installed Herald needs no checkout."""
