import pytest


@pytest.mark.django_db(databases="__all__")
def test_sequences_page_renders_for_superuser(admin_client):
    response = admin_client.get("/admin/integrity/sequence/")
    assert response.status_code == 200
    assert b"sequence-table" in response.content


@pytest.mark.django_db(databases="__all__")
def test_second_admin_site_serves_the_page(admin_client):
    response = admin_client.get("/second-admin/integrity/sequence/")
    assert response.status_code == 200
