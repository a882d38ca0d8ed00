"""The recipe: every knob of a sigx run, validated by Pydantic v2.

A recipe is one YAML file. Every section forbids unknown keys so that a typo (``trainig.lr``) is an error
rather than a silently ignored setting; every field carries its default so that the smallest useful recipe is
a few lines. ``load_recipe`` turns any problem into :class:`RecipeError`, whose lines each name the field path
and what is allowed, so that the CLI can print them without a traceback.

One module per job, imported here so that ``from sigx.config import ...`` names everything:

- ``base``: the error type, the strict base model every section subclasses, the field roles (what a change of a
  field means), checks several sections share;
- ``sections``: the run's own sections (model, rollout, training with lora, logging);
- ``tasks``: the task sections and their registry; ``techniques``: the technique sections and theirs;
- ``ablation``: the ablation section (factors, design, seeds, metric and margin, executors);
- ``recipe``: the whole recipe, its warnings, and the field paths each role names across it;
- ``reading``: a recipe file's YAML read safely into plain data;
- ``loading``: overrides, one-line errors, field factors checked, ``load_recipe``.
"""

from sigx.config.ablation import (EXECUTORS, MAX_COMBINATION, MAX_LABEL, AblationConfig, FieldFactor, RayConfig,
                                  SlurmConfig, level_label, register_executor)
from sigx.config.base import (FIELD_PROBLEM, MAX_INT, MAX_NEW_TOKENS, MAX_TEXT, ROLES, Names, RecipeError, Strict,
                              field_names_with_role, names_of, role, roles_of)
from sigx.config.loading import (apply_overrides, field_factor_problems, format_validation_error, load_recipe,
                                 parse_override, recipe_from_data, set_path)
from sigx.config.reading import MAX_RECIPE_VALUES, RecipeLoader, read_recipe_file
from sigx.config.recipe import (COMPUTE_LAYOUT_FIELDS, EXECUTION_FIELDS, FACTOR_SECTIONS, MAX_SEED,
                                RESUMABLE_CHANGES, Recipe, default_recipe_like, fields_with_role, recipe_warnings)
from sigx.config.sections import (ADVANTAGE_NAMES, ENGINE_FIELDS, POLICY_LOSS_NAMES, ROLLOUT_BACKEND_NAMES,
                                  LoggingConfig, LoRAConfig, ModelConfig, RolloutConfig, TinyModelConfig,
                                  TrainingConfig)
from sigx.config.tasks import (DEFAULT_TASK, TASK_CONFIGS, ArithmeticTaskConfig, GSM8KTaskConfig, QADataSource,
                               QASearchTaskConfig, RetrieverConfig, SearchTaskConfig, TaskConfig,
                               register_task_config)
from sigx.config.techniques import (TECHNIQUE_CONFIGS, TECHNIQUE_ORDER, GCRLConfig, LLMJudgeConfig, SearchP1Config,
                                    SORLConfig, SSPOConfig, TechniqueConfig, TechniquesConfig,
                                    register_technique_config, technique_order)

__all__ = [
    "ADVANTAGE_NAMES", "Names", "POLICY_LOSS_NAMES", "ROLLOUT_BACKEND_NAMES", "names_of",
    "AblationConfig", "ArithmeticTaskConfig", "COMPUTE_LAYOUT_FIELDS", "DEFAULT_TASK", "ENGINE_FIELDS",
    "EXECUTION_FIELDS", "EXECUTORS", "FACTOR_SECTIONS", "FIELD_PROBLEM", "FieldFactor", "GCRLConfig",
    "GSM8KTaskConfig", "LLMJudgeConfig", "LoRAConfig", "LoggingConfig", "MAX_COMBINATION", "MAX_INT", "MAX_LABEL",
    "MAX_NEW_TOKENS", "MAX_RECIPE_VALUES", "MAX_SEED", "MAX_TEXT", "ModelConfig", "QADataSource",
    "QASearchTaskConfig", "RESUMABLE_CHANGES", "ROLES", "RayConfig", "Recipe", "RecipeError", "RecipeLoader",
    "RetrieverConfig", "RolloutConfig", "SORLConfig", "SSPOConfig", "SearchP1Config", "SearchTaskConfig",
    "SlurmConfig", "Strict", "TASK_CONFIGS", "TECHNIQUE_CONFIGS", "TECHNIQUE_ORDER", "TaskConfig",
    "TechniqueConfig", "TechniquesConfig", "TinyModelConfig", "TrainingConfig", "apply_overrides",
    "default_recipe_like", "field_factor_problems", "field_names_with_role", "fields_with_role",
    "format_validation_error", "level_label", "load_recipe", "parse_override", "read_recipe_file",
    "recipe_from_data", "recipe_warnings", "register_executor", "register_task_config",
    "register_technique_config", "role", "roles_of", "set_path", "technique_order",
]
