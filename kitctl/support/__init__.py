"""`kitctl support-bundle`: one redacted archive of what HQ's support needs to see."""
