"""Built-in responders."""
