"""Consent statistics: columns kept with each receipt, aggregates in SQL, the chart, the command.

:mod:`.schema` (the columns and their migration), :mod:`.query` (the aggregates),
:mod:`.render` (table, JSON, CSV), :mod:`.chart` (SVG and PNG, needs ``asgi-consent[stats]``),
:mod:`.command` (``consent stats``). Nothing is imported here: the stores import
:mod:`.schema` alone.
"""
