"""Web plane: the only package that imports FastAPI/Starlette; the server's composition root."""
