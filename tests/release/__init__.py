"""Release checks: PyPI distributions, the Meltano Hub definition, workflows, lock files."""
