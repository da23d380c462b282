"""The web shell: HTML pages and the JSON API over search.service.SearchService."""
