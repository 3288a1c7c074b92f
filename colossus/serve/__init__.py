"""The HTTP server (`colossus serve`): OpenAI-compatible routes, auth, metrics, the conversation store
and the web chat. Start with app.py."""
