"""HTTP routers: thin functions that parse the request, call a service and map the answer."""
