"""Reference numbers of Jaques et al. (2019), transcribed from the supplementary material.

Tables 1–3 give the best hyperparameters per game × model, Table 4 the final collective
reward. Values are kept as the paper prints them (strings), so a table can show them verbatim.
"""

from __future__ import annotations

ENVS: tuple[str, ...] = ("cleanup", "harvest")
ENV_TITLES: dict[str, str] = {"cleanup": "Cleanup", "harvest": "Harvest", "box_trapped": "Box trapped"}

#: Display name of every `reward.name`.
MODEL_TITLES: dict[str, str] = {
    "extrinsic": "A3C baseline",
    "visible": "Visible actions baseline",
    "influence": "Influence",
    "comm": "Comm. baseline",
    "comm_influence": "Influence comm.",
    "moa": "MOA baseline",
    "moa_influence": "Influence MOA",
    "collective": "Prosocial (collective reward)",
    "inequity_aversion": "Inequity aversion",
}

#: The three experiments: figure/table name -> (title, reward names in plotting order).
EXPERIMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "basic": ("Basic influence", ("extrinsic", "visible", "influence")),
    "comm": ("Communication", ("extrinsic", "comm", "comm_influence")),
    "moa": ("Model of other agents", ("extrinsic", "moa", "moa_influence")),
}

#: Each influence model's own baseline (the model without the influence reward: Figs 1, 4, 7).
OWN_BASELINE: dict[str, str] = {rewards[-1]: rewards[1] for _, rewards in EXPERIMENTS.values()}

#: Length of the paper's runs in env steps (Figs 1, 4, 7: 3e8 on the x-axis).
PAPER_ENV_STEPS = 3e8

#: Hyperparameter rows of Tables 1–3: paper label -> dotted config key.
HPARAM_KEYS: dict[str, str] = {
    "Entropy reg.": "optim.entropy",
    "lr_init": "optim.lr_init",
    "lr_end": "optim.lr_end",
    "Number of influencers": "reward.num_influencers",
    "Influence weight β": "reward.beta",
    "Extrinsic reward weight α": "reward.alpha",
    "Curriculum C": "reward.curriculum",
    "Policy comparison": "reward.divergence",
    "Influencee reward": "reward.influencee_reward",
    "Comm. entropy reg.": "optim.comm_entropy",
    "Comm. loss weight": "optim.comm_loss_weight",
    "Symbol vocab size": "model.vocab",
    "Comm. embedding": "model.comm_embedding",
    "MOA loss weight": "optim.moa_loss_weight",
    "Train MOA only when visible": "optim.moa_only_when_visible",
}

_A3C = {
    "cleanup": {"Entropy reg.": ".00176", "lr_init": ".00126", "lr_end": ".000012"},
    "harvest": {"Entropy reg.": ".000687", "lr_init": ".00136", "lr_end": ".000028"},
}

#: Tables 1–3: table number -> (experiment, {(env, reward): {paper label: value}}).
#: Rows a model does not have are absent (the paper prints "-").
HPARAM_TABLES: dict[int, tuple[str, dict[tuple[str, str], dict[str, str]]]] = {
    1: ("basic", {
        ("cleanup", "extrinsic"): _A3C["cleanup"],
        ("cleanup", "visible"): {"Entropy reg.": ".00176", "lr_init": ".00126", "lr_end": ".000012",
                                 "Number of influencers": "3", "Influence weight β": "0"},
        ("cleanup", "influence"): {"Entropy reg.": ".000248", "lr_init": ".00107", "lr_end": ".000042",
                                   "Number of influencers": "1", "Influence weight β": ".146",
                                   "Curriculum C": "140", "Policy comparison": "JSD",
                                   "Influencee reward": "1"},
        ("harvest", "extrinsic"): _A3C["harvest"],
        ("harvest", "visible"): {"Entropy reg.": ".00184", "lr_init": ".00215", "lr_end": ".000013",
                                 "Number of influencers": "3", "Influence weight β": "0"},
        ("harvest", "influence"): {"Entropy reg.": ".00025", "lr_init": ".00107", "lr_end": ".000042",
                                   "Number of influencers": "3", "Influence weight β": ".224",
                                   "Curriculum C": "140", "Policy comparison": "PMI",
                                   "Influencee reward": "0"},
    }),
    2: ("comm", {
        ("cleanup", "extrinsic"): _A3C["cleanup"],
        ("cleanup", "comm"): {"Entropy reg.": ".000249", "lr_init": ".00223", "lr_end": ".000022",
                              "Influence weight β": "0"},
        ("cleanup", "comm_influence"): {"Entropy reg.": ".00305", "lr_init": ".00249",
                                        "lr_end": ".0000127", "Influence weight β": "2.752",
                                        "Extrinsic reward weight α": "0", "Curriculum C": "1",
                                        "Policy comparison": "KL", "Comm. entropy reg.": ".000789",
                                        "Comm. loss weight": ".0758", "Symbol vocab size": "9",
                                        "Comm. embedding": "32"},
        ("harvest", "extrinsic"): _A3C["harvest"],
        ("harvest", "comm"): {"Entropy reg.": ".000174", "lr_init": ".00137", "lr_end": ".0000127",
                              "Influence weight β": "0"},
        ("harvest", "comm_influence"): {"Entropy reg.": ".00220", "lr_init": ".000413",
                                        "lr_end": ".000049", "Influence weight β": "4.825",
                                        "Extrinsic reward weight α": "1.0", "Curriculum C": "8",
                                        "Policy comparison": "KL", "Comm. entropy reg.": ".00208",
                                        "Comm. loss weight": ".0709", "Symbol vocab size": "7",
                                        "Comm. embedding": "16"},
    }),
    3: ("moa", {
        ("cleanup", "extrinsic"): _A3C["cleanup"],
        ("cleanup", "moa"): {"Entropy reg.": ".00176", "lr_init": ".00123", "lr_end": ".000012",
                             "Influence weight β": "0", "MOA loss weight": "1.312",
                             "Train MOA only when visible": "False"},
        ("cleanup", "moa_influence"): {"Entropy reg.": ".00176", "lr_init": ".00123", "lr_end": ".000012",
                                       "Influence weight β": ".620", "MOA loss weight": "15.007",
                                       "Curriculum C": "40", "Policy comparison": "KL",
                                       "Train MOA only when visible": "True"},
        ("harvest", "extrinsic"): _A3C["harvest"],
        ("harvest", "moa"): {"Entropy reg.": ".00495", "lr_init": ".00206", "lr_end": ".000022",
                             "Influence weight β": "0", "MOA loss weight": "1.711",
                             "Train MOA only when visible": "False"},
        ("harvest", "moa_influence"): {"Entropy reg.": ".00223", "lr_init": ".00120", "lr_end": ".000044",
                                       "Influence weight β": "2.521", "MOA loss weight": "10.911",
                                       "Curriculum C": "226", "Policy comparison": "KL",
                                       "Train MOA only when visible": "True"},
    }),
}

#: Table 4 rows in the paper's order: reward name -> {env: final collective reward}.
TABLE4: dict[str, dict[str, float]] = {
    "extrinsic": {"cleanup": 89, "harvest": 485},
    "inequity_aversion": {"cleanup": 275, "harvest": 750},
    "influence": {"cleanup": 190, "harvest": 1073},
    "comm_influence": {"cleanup": 166, "harvest": 951},
    "moa_influence": {"cleanup": 392, "harvest": 588},
}
TABLE4_TITLES: dict[str, str] = {
    "extrinsic": "A3C baseline",
    "inequity_aversion": "Inequity aversion (Hughes et al.)",
    "influence": "Influence - Basic",
    "comm_influence": "Influence - Communication",
    "moa_influence": "Influence - Model of other agents",
}
#: Table 4 compares every model with this row.
TABLE4_REFERENCE = "inequity_aversion"

#: §5.1: correlation between influence received through communication and individual reward.
INFLUENCE_REWARD_RHO: dict[str, float] = {"cleanup": 0.67, "harvest": 0.34}

#: Box trapped (supplementary §10.3 text, Fig 12): fraction of trajectories in which the box is opened.
#: The paper gives 88 % for "the social influence reward" without naming the variant, so every
#: influence reward is compared with it.
BOX_OPENED: dict[str, float] = {"extrinsic": 0.0, "influence": 0.88, "comm_influence": 0.88, "moa_influence": 0.88}
