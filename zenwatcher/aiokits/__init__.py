"""Small asyncio helpers with no Kubernetes and no HTTP in them."""
