"""Subcommands of the console command, one module each, and the CLI helpers they share."""
