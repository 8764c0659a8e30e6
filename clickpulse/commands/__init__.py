"""Sub-commands of the ``clickpulse`` CLI, one module per area; ``clickpulse.cli`` registers them."""
