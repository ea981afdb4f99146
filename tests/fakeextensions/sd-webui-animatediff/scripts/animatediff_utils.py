"""Fake of continue-revolution/sd-webui-animatediff (a88e889), scripts/animatediff_utils.py: `get_animatediff_arg(p)`,
which turns the API's dict into an `AnimateDiffProcess` and assigns a new list to `p.script_args`."""


def get_animatediff_arg(p):
    if not p.scripts:
        return None
    for script in p.scripts.alwayson_scripts:
        if script.title().lower() == "animatediff":
            animatediff_arg = p.script_args[script.args_from]
            if isinstance(animatediff_arg, dict):
                from scripts.animatediff_ui import AnimateDiffProcess

                animatediff_arg = AnimateDiffProcess(**animatediff_arg)
                p.script_args = list(p.script_args)
                p.script_args[script.args_from] = animatediff_arg
            return animatediff_arg
    return None
