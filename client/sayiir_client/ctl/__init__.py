"""`sayiirctl`: the operator's command line over the typed client (workflows, events, task results, runs).

One module per command group (`workflow`, `event`, `task`, `run`), each with a `register(commands)` that adds
its subcommands; `main.COMMAND_GROUPS` is the list of them. `connection` holds the flags every command that
talks to a server takes (`add_connection_arguments`, `connect`), `output` the table and JSON-lines writers,
`exit_codes` the error classes and their exit codes.
"""
