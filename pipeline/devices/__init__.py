"""Device models, characterization readers, synthesiser and fitting (DESIGN §1.3, §1.5)."""
