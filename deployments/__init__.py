"""How the flows run: schedules, serving and work pools. Only this package knows about them."""
