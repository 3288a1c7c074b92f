"""The assistant: the loop that turns the token engine into an assistant that searches the feed, calculates,
fact-checks and cites (colossus.assistant.loop), and the formats that its model is trained on
(colossus.assistant.format). The server, the terminal chat and the evals all use it."""
