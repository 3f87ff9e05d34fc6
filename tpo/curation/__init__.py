"""Stage 3, curation: reviewing pairs (audited, versioned), importing and exporting them."""
