"""reassembly stage."""
