"""Raw input formats: FASTA (streamed, indexed, parts), BED, MAF, and audio decoding and encoding."""
