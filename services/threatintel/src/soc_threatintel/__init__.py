"""threatintel: Cyware CSAP (threat intelligence) → normalised events on the bus."""
