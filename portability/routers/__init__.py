"""HTTP routers, one per resource: requests, jobs, links, downloads, audit."""
