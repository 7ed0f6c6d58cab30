"""The Lindenhof Clinic information site: a minimal Django project behind ConsentMiddleware."""
