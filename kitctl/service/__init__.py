"""The host service: runs on the licensee's host the upgrades HQ's rollouts ask for (`kitctl service …`)."""
