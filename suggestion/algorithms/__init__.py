"""Built-in suggestion algorithms, one module each."""
