from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("newsletter", views.newsletter, name="newsletter"),
    path("api/visitor", views.visitor, name="visitor"),
    path("waiting-times", views.waiting_times, name="waiting-times"),
]
