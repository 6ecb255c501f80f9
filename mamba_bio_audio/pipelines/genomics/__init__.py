"""What the genomics commands (``score``, ``vep``, ``embed``) share in the pipelines layer: sharding their items
over processes through Lightning's predict loop (:mod:`.sharded`)."""
