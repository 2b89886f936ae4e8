"""The conversion webhook the operator serves: its certificates and its HTTPS server."""
