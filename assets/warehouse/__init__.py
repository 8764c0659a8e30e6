"""Raw warehouse tables and the dimension assets (video catalog, user profiles)."""
