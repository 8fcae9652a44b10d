"""The user side of the `modelport` command: a REST client and its subcommands."""
