"""NetworkPolicy: the verdict oracle (pure), and its enforcement in node namespaces."""
