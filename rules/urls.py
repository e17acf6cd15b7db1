"""URLs of the rule pages and the builder's htmx endpoints."""

from django.urls import path

from rules import views

app_name = "rules"

urlpatterns = [
    path("", views.rule_list, name="list"),
    path("new/", views.rule_new, name="new"),
    path("<int:pk>/edit/", views.rule_edit, name="edit"),
    path("<int:pk>/clone/", views.rule_clone_view, name="clone"),
    path("<int:pk>/delete/", views.rule_delete_view, name="delete"),
    path("<int:pk>/active/", views.rule_active_view, name="set-active"),
    path("builder/row/", views.builder_row, name="builder-row"),
    path("builder/text/", views.builder_preview_text, name="builder-preview-text"),
    path("builder/parse/", views.parse_text_view, name="parse-text"),
    path("builder/preview/", views.preview, name="preview"),
]
