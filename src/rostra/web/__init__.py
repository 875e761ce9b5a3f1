"""Web plane: the only package that imports FastAPI/Starlette; the composition root of the server."""
