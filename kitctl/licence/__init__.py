"""The CLI's side of licences: reading a token from what a person typed, and showing it."""
