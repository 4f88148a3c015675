"""The site on Docker Swarm (`kitctl up --orchestrator swarm`): services, configs, secrets, rolling updates."""
