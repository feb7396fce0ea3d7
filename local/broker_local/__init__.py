"""Run the broker on one machine: template-driven AWS stand-ins and a local HTTP API gateway."""
