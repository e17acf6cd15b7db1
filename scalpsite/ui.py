"""What the pages share: the form-field style and telling htmx requests apart."""

# Tailwind classes of every text box and select (theme/static_src scans this file).
FIELD = (
    "rounded border border-slate-700 bg-slate-950 px-2 py-1 text-slate-100 "
    "placeholder:text-slate-600 focus:border-emerald-500 focus:outline-none "
    "focus:ring-1 focus:ring-emerald-500 disabled:cursor-not-allowed disabled:opacity-50 "
    "aria-[invalid=true]:border-rose-500"
)
INPUT = "w-full " + FIELD


def is_htmx(request) -> bool:
    """A request htmx made (it answers with a fragment, not a whole page)."""
    return request.headers.get("HX-Request") == "true"
