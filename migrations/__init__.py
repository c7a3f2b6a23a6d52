"""The SQL migrations of each dialect: data, shipped inside the herald_server package and read
with importlib.resources, so `herald migrate` works from an installed wheel."""
