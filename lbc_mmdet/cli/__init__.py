"""Command-line entry points (``tools/*.py`` call ``main()`` of these modules)."""
