"""The subcommands of ``sfc-hls`` (registered in :mod:`sfc_hls.cli`).

Each module has ``add_arguments(parser)`` and ``run(args) -> int``; the CLI
imports a module only when its subcommand is chosen and turns the errors it
raises into one-line messages.  The host and hardware subcommands live next
to their code (:mod:`sfc_hls.host.run`, :mod:`sfc_hls.host.error_study`,
:mod:`sfc_hls.hw.synth_report`).
"""
