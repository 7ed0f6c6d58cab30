"""ConsentMiddleware in every supported framework, through each framework's own app object."""
