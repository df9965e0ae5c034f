"""Imported once by the examination workers' forkserver (tasks/examine_pool.WORKER_MODULES), and so inherited by
every worker it forks: what each worker would otherwise make for itself at its first file is made here once."""

from tasks.answer_writing import compile_answer_templates

compile_answer_templates()
