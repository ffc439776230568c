"""The base every other package stands on: errors, argument checks, ranking, model folders.

Nothing here imports another package of this project, so `encoders`, `index`,
`recommenders`, `engine` and `evaluation` can all use it.
"""
