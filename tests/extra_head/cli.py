"""The counter's command: train-count."""

import os

import click

from charseq.options import configure_output, echo_done, given_settings, model_options, training_options

CONFIG = "extra_head.config:ModelConfig"


@click.command("train-count")
@click.argument("train_file", type=click.Path())
@model_options(CONFIG)
@training_options(CONFIG)
def train_count_command(train_file, out, force, resume, **settings):
    """Train a model that counts the letter "a" in each line of TRAIN_FILE."""
    configure_output()
    from extra_head.run import train_count

    out = out or os.path.join("runs", "count")
    train_count(train_file, out, force=force, resume=resume, log=click.echo, **given_settings(settings, resume, out))
    echo_done(out)


COMMANDS = (train_count_command,)
EVALUATE_OPTIONS = ()
EVALUATE_HELP = 'Letter counters: the mean absolute error of the count of "a" on a file of lines.'
