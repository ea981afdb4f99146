"""Fake of modules/options.py: OptionInfo, Options with onchange + revert-on-error; categories from v1.7."""

import fake_host

from modules import errors


class OptionInfo:
    def __init__(
        self,
        default=None,
        label="",
        component=None,
        component_args=None,
        onchange=None,
        section=None,
        refresh=None,
        comment_before="",
        comment_after="",
        infotext=None,
        restrict_api=False,
        category_id=None,
    ):
        if category_id is not None and not fake_host.at_least("1.7.0"):
            raise TypeError("OptionInfo.__init__() got an unexpected keyword argument 'category_id' (added in v1.7.0)")
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api

    def info(self, info):
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def needs_restart(self):
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self):
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


def options_section(section_identifier, options_dict):
    for v in options_dict.values():
        # v1.6.0 stores the identifier as given (it has no categories)
        if not fake_host.at_least("1.7.0") or len(section_identifier) == 2:
            v.section = section_identifier
        elif len(section_identifier) == 3:
            v.section = section_identifier[0:2]
            v.category_id = section_identifier[2]
    return options_dict


class Options:
    def __init__(self, data_labels, restricted_opts):
        self.data_labels = data_labels
        self.data = {k: v.default for k, v in self.data_labels.items() if not v.do_not_save}
        self.restricted_opts = restricted_opts

    def __setattr__(self, key, value):
        if key in ("data", "data_labels", "restricted_opts"):
            return super().__setattr__(key, value)
        if key in self.data or key in self.data_labels:
            self.data[key] = value
            return None
        return super().__setattr__(key, value)

    def __getattr__(self, item):
        if item in ("data", "data_labels", "restricted_opts"):
            raise AttributeError(item)
        if item in self.data:
            return self.data[item]
        if item in self.data_labels:
            return self.data_labels[item].default
        return super().__getattribute__(item)

    def set(self, key, value, is_api=False, run_callbacks=True):
        oldval = self.data.get(key, None)
        if oldval == value:
            return False
        option = self.data_labels[key]
        setattr(self, key, value)
        if run_callbacks and option.onchange is not None:
            try:
                option.onchange()
            except Exception as e:
                errors.display(e, f"changing setting {key} to {value}")
                setattr(self, key, oldval)
                return False
        return True

    def get_default(self, key):
        info = self.data_labels.get(key)
        return None if info is None else info.default

    def onchange(self, key, func, call=True):
        item = self.data_labels.get(key)
        item.onchange = func
        if call:
            func()

    def add_option(self, key, info):
        self.data_labels[key] = info
        if fake_host.at_least("1.7.0") and key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def reorder(self):
        """Run by ui_settings after the ui_settings callbacks: sections together (v1.7+: grouped by category and
        sorted by section label, which fails on a section that is not an `(id, label)` pair)."""
        items = list(self.data_labels.items())
        if not fake_host.at_least("1.7.0"):
            section_ids = {}
            for _, item in items:
                section_ids.setdefault(item.section, len(section_ids))
            self.data_labels = dict(sorted(items, key=lambda x: section_ids[x[1].section]))
            return
        section_categories = {}
        for _, item in items:
            section_categories.setdefault(item.section, item.category_id)
        for _, item in items:
            item.category_id = section_categories.get(item.section)
        category_ids = {category_id: n for n, category_id in enumerate(categories.mapping)}

        def sort_key(x):
            item = x[1]
            return category_ids.get(item.category_id, len(category_ids)), item.section[1]

        self.data_labels = dict(sorted(items, key=sort_key))


if fake_host.at_least("1.7.0"):

    class OptionsCategory:
        def __init__(self, id, label):
            self.id = id
            self.label = label

    class OptionsCategories:
        def __init__(self):
            self.mapping = {}

        def register_category(self, category_id, label):
            if category_id not in self.mapping:
                self.mapping[category_id] = OptionsCategory(category_id, label)
            return category_id

    categories = OptionsCategories()
