"""Publishing, listing, reading and deleting packages: the Packages API's rules, and
npm's (publish documents, dist-tags, packuments), for every door that publishes or reads."""

import builtins
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from packaging.utils import canonicalize_name
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry_tokens.db import Database
from registry_tokens.db.failures import CommitOutcomeUnknown, is_foreign_key_violation
from registry_tokens.kit.context import Caller, RequestContext, Scope
from registry_tokens.kit.cursor import Cursor, Window, fetch_window
from registry_tokens.kit.errors import AppError, FieldProblem, NotFound, ValidationFailed
from registry_tokens.kit.ids import new_id
from registry_tokens.kit.patterns import PackagePatterns, normalized_name
from registry_tokens.kit.signing import derive_key, sign, verify
from registry_tokens.kit.urls import UPLOAD_FILENAME, Urls
from registry_tokens.packages.metadata import (
    BadDistribution,
    distribution_identity,
    read_distribution,
)
from registry_tokens.packages.models import Package, StagedUpload
from registry_tokens.packages.npm import (
    NPM_KIND,
    BadNpmPackage,
    NpmTarball,
    decoded_chunks,
    file_sha1,
    highest,
    integrity,
    read_publish,
    read_tarball,
    valid_name,
    valid_tag,
    valid_version,
)
from registry_tokens.packages.repository import (
    DIST_TAGS,
    FILE_BY_ID,
    FILE_BY_NAME,
    NPM_VERSIONS,
    PROJECT_FILES,
    PROJECTS,
    DistTagRepository,
    NpmVersion,
    PackageRepository,
    ProjectFile,
    StagedUploadRepository,
    StoredFile,
)
from registry_tokens.packages.storage import PackageStore, StagedFile, Sweep
from registry_tokens.registries.repository import RegistryRepository, RegistryRow
from registry_tokens.registries.service import Ecosystem, visible_registry

# A presigned upload's key, as S3's presigned POST spells it: the client puts the
# file's base name in place of the variable.
FILENAME_VARIABLE = "${filename}"


@dataclass(frozen=True)
class PresignedUpload:
    """Where and how to post one file (``form.url``, ``form.data``), as go-buildkite's
    ``PackagePresignedUpload`` reads it."""

    url: str
    key: str
    fields: dict[str, str]  # ``form.data``: the key, the policy and its signature


@dataclass(frozen=True)
class UploadGrant:
    """What a valid policy lets the upload target stage: one file, at most ``max_bytes``."""

    upload_id: uuid.UUID
    registry_id: uuid.UUID
    user_id: uuid.UUID | None  # None: an OIDC token's upload
    token_id: uuid.UUID
    filename: str
    max_bytes: int
    expires_at: datetime


class PackageService:
    def __init__(
        self,
        database: Database,
        files: PackageStore,
        max_upload_bytes: int,
        *,
        key: bytes,
        urls: Urls,
        clock: Callable[[], datetime],
        upload_expiry: timedelta,
    ) -> None:
        self.database = database
        self.files = files
        self.max_upload_bytes = max_upload_bytes
        self.policy_key = derive_key(key, "presigned-upload-policy")
        self.urls = urls
        self.clock = clock
        self.upload_expiry = upload_expiry

    def may_publish(self, caller: Caller, org: str, registry: str) -> RegistryRow:
        """Refuses a publish before a byte of the upload is stored."""
        caller.require(Scope.WRITE_PACKAGES)
        return _publishable(visible_registry(self.database, caller, org, registry))

    def publish(
        self, caller: Caller, org: str, registry: str, upload: BinaryIO, filename: str
    ) -> tuple[Package, RegistryRow]:
        found = self.may_publish(caller, org, registry)
        try:
            staged = self.files.stage(upload, self.max_upload_bytes)
        except ValueError as exc:
            raise AppError(f"The package file is too large: {exc}", 413) from exc
        try:
            return self._publish_staged(caller, org, found, staged, filename)
        finally:
            self.files.discard(staged)  # a no-op once the file was moved into place

    def publish_npm(
        self, caller: Caller, org: str, registry: str, name: str, document: object
    ) -> tuple[Package, RegistryRow]:
        """``npm publish``: the document's one version, from its one attachment. The
        tarball's own package.json must name the package and version the document and
        its URL name; the document's integrity and length, when given, must be the
        attachment's. ``latest`` (or the tag npm was given) then names the version."""
        found = self.may_publish(caller, org, registry)
        if found.ecosystem != Ecosystem.JAVASCRIPT.value:
            raise _not_npm(found)
        try:
            request = read_publish(document, name)
        except BadNpmPackage as exc:
            raise AppError(f"Validation failed: {exc}", 422) from exc
        staging = self.files.staging(self.max_upload_bytes)
        try:
            for chunk in decoded_chunks(request.attachment):
                staging.write(chunk)
            staged = staging.finish()
        except BadNpmPackage as exc:
            staging.abandon()
            raise AppError(f"Validation failed: {exc}", 422) from exc
        except ValueError as exc:
            staging.abandon()
            raise AppError(f"The package file is too large: {exc}", 413) from exc
        except BaseException:
            staging.abandon()
            raise
        try:
            tarball = _read_npm(staged)
            problems = []
            if (tarball.name, tarball.version) != (request.name, request.version):
                problems.append(
                    f"the tarball's package.json is {tarball.name}@{tarball.version}, "
                    f"not {request.name}@{request.version} as the publish document says"
                )
            if request.length is not None and request.length != staged.size:
                problems.append(
                    f"the attachment is {staged.size} bytes, not {request.length} as declared"
                )
            if request.integrity is not None and request.integrity != integrity(staged.sha512):
                problems.append("the attachment does not match the version's dist.integrity")
            sha1 = file_sha1(staged.path)
            if request.shasum is not None and request.shasum != sha1:
                problems.append("the attachment does not match the version's dist.shasum")
            if problems:
                raise AppError(f"Validation failed: {'; '.join(problems)}", 422)
            return self._place(
                caller,
                org,
                registry,
                staged,
                _npm_package(caller, staged, tarball, sha1),
                tags=(request.tag,),
            )
        finally:
            self.files.discard(staged)  # a no-op once the file was moved into place

    def npm_versions(
        self, registry: RegistryRow, name: str, allowed: PackagePatterns | None = None
    ) -> "builtins.list[NpmVersion]":
        """The versions of an npm package an install may read (access already decided;
        ``allowed``: the names its token may see, the others as absent)."""
        _npm_registry(registry)
        _visible(registry, name, allowed, "package")
        rows = self.database.fetch(NPM_VERSIONS, registry_id=registry.id, project=name)
        if not rows:
            raise NotFound("package")
        return rows

    def npm_dist_tags(
        self,
        registry: RegistryRow,
        name: str,
        versions: "builtins.list[NpmVersion] | None" = None,
        allowed: PackagePatterns | None = None,
    ) -> dict[str, str]:
        """The package's dist-tags; ``latest`` is always there: when no tag is stored (its
        version was deleted, or it came by a copy), it is the highest release."""
        listed = versions if versions is not None else self.npm_versions(registry, name, allowed)
        tags = {
            row.tag: row.version
            for row in self.database.fetch(DIST_TAGS, registry_id=registry.id, project=name)
        }
        if "latest" not in tags:
            fallback = highest([row.version for row in listed])
            if fallback is not None:
                tags["latest"] = fallback
        return dict(sorted(tags.items()))

    def npm_file(self, registry: RegistryRow, name: str, filename: str) -> StoredFile:
        """An npm tarball an install may download (by its stored name)."""
        _npm_registry(registry)
        rows = self.database.fetch(FILE_BY_NAME, registry_id=registry.id, filename=filename)
        if not rows or rows[0].kind != NPM_KIND or rows[0].project != name:
            raise NotFound("file")
        return rows[0]

    def tag_npm_version(
        self, caller: Caller, org: str, registry: str, name: str, tag: str, version: object
    ) -> None:
        """``npm dist-tag add``: ``tag`` names ``version`` (an existing one) from now on."""
        found = self.may_publish(caller, org, registry)
        _npm_registry(found)
        try:
            valid_name(name)
            valid_tag(tag)
            if not isinstance(version, str):
                raise BadNpmPackage('send the version to tag as a JSON string, e.g. "1.0.0"')
            valid_version(version)
        except BadNpmPackage as exc:
            raise AppError(f"Validation failed: {exc}", 422) from exc
        try:
            with self.database.writing() as session:
                tags = DistTagRepository(session)
                package = tags.version(found.id, name, version)
                if package is None:
                    raise NotFound(f"version {version} of {name}")
                tags.point(found.id, name, tag, package.id)
        except IntegrityError as error:  # another request added the same tag first
            if is_foreign_key_violation(error):
                raise NotFound("package") from error
            raise AppError(f"The dist-tag {tag} is being changed; please retry", 409) from error

    def untag_npm(self, caller: Caller, org: str, registry: str, name: str, tag: str) -> None:
        """``npm dist-tag rm``. ``latest`` stays: point it at another version instead."""
        found = self.may_publish(caller, org, registry)
        _npm_registry(found)
        if tag == "latest":
            raise AppError(
                "Validation failed: the latest dist-tag cannot be removed; point it at "
                "another version with npm dist-tag add",
                422,
            )
        with self.database.writing() as session:
            if not DistTagRepository(session).remove(found.id, name, tag):
                raise NotFound(f"dist-tag {tag} of {name}")

    def presign(self, caller: Caller, org: str, registry: str) -> PresignedUpload:
        """A signed policy for one upload to our upload target, bound to this registry
        (so its organization), this caller's token, the size limit and an expiry. Nothing
        is stored until the file arrives."""
        caller.require(Scope.WRITE_PACKAGES)
        found = _publishable(visible_registry(self.database, caller, org, registry))
        self.discard_expired_uploads()
        upload_id = new_id()
        expires = self.clock() + self.upload_expiry
        policy, signature = sign(
            self.policy_key,
            {
                "upload": str(upload_id),
                "organization": str(found.organization_id),
                "registry": str(found.id),
                "user": str(caller.user_id) if caller.user_id is not None else "",
                "token": str(caller.token_id),
                "max_bytes": self.max_upload_bytes,
                "expires": int(expires.timestamp()),
            },
        )
        # Straight to the bucket, when the store takes uploads so: its own policy bounds
        # the key (ours, signed, inside it) and the size; ours is checked at the finalize.
        direct = self.files.presigned_post(
            f"{policy}.{signature}",
            self.max_upload_bytes,
            int(self.upload_expiry.total_seconds()),
        )
        if direct is not None:
            url, fields = direct
            return PresignedUpload(url, fields["key"], fields)
        key = f"{upload_id}/{FILENAME_VARIABLE}"
        return PresignedUpload(
            self.urls.upload_target(),
            key,
            {"key": key, "policy": policy, "signature": signature},
        )

    def authorize_upload(self, fields: Mapping[str, str], filename: str) -> "UploadGrant":
        """What the policy in a presigned upload's fields allows (refused unless it is
        ours, unchanged and unexpired): asked when the file's part begins, before a byte
        of the file is kept."""
        claims = self._upload_claims(fields, filename)
        return UploadGrant(
            upload_id=uuid.UUID(claims["upload"]),
            registry_id=uuid.UUID(claims["registry"]),
            user_id=uuid.UUID(claims["user"]) if claims["user"] else None,
            token_id=uuid.UUID(claims["token"]),
            filename=filename,
            max_bytes=min(int(claims["max_bytes"]), self.max_upload_bytes),
            expires_at=datetime.fromtimestamp(int(claims["expires"]), UTC),
        )

    def keep_upload(self, grant: "UploadGrant", staged: StagedFile) -> None:
        """Records a file staged under a grant, for its finalize; else discards it."""
        try:
            name = self.files.hold(staged)  # where any instance's finalize finds it
        except BaseException:
            self.files.discard(staged)
            raise
        try:
            with self.database.writing() as session:
                StagedUploadRepository(session).add(
                    StagedUpload(
                        id=grant.upload_id,
                        registry_id=grant.registry_id,
                        uploaded_by_id=grant.user_id,
                        token_id=grant.token_id,
                        filename=grant.filename,
                        staged_name=name,
                        size=staged.size,
                        sha256=staged.sha256,
                        sha512=staged.sha512,
                        expires_at=grant.expires_at,
                    )
                )
        except BaseException as error:
            if not isinstance(error, CommitOutcomeUnknown):  # else its row may be there
                self.files.forget(name)
            if is_foreign_key_violation(error):  # the registry (or its user) is gone
                raise NotFound("registry") from error
            if isinstance(error, IntegrityError):
                raise AppError("This upload policy has already been used", 409) from error
            raise

    def _upload_claims(self, fields: Mapping[str, str], filename: str) -> dict[str, str]:
        missing = [name for name in ("key", "policy", "signature") if name not in fields]
        if missing:
            raise AppError(f"The upload is not authorized: no {', '.join(missing)} field", 403)
        claims = verify(self.policy_key, fields["policy"], fields["signature"])
        if claims is None:
            raise AppError("The upload is not authorized: the policy's signature is wrong", 403)
        if int(claims["expires"]) <= self.clock().timestamp():
            raise AppError("The upload is not authorized: the policy has expired", 403)
        template = f"{claims['upload']}/{FILENAME_VARIABLE}"
        if fields["key"] not in (template, template.replace(FILENAME_VARIABLE, filename)):
            raise AppError("The upload is not authorized: the key is not the policy's", 403)
        if not UPLOAD_FILENAME.fullmatch(filename):
            raise ValidationFailed(
                [
                    FieldProblem(
                        "file",
                        "invalid",
                        "must be named as a wheel or sdist is (letters, digits, '.', '_', "
                        "'-', '+' or '!')",
                    )
                ]
            )
        return claims

    def publish_uploaded(
        self, caller: Caller, org: str, registry: str, package_url: str
    ) -> tuple[Package, RegistryRow]:
        """Publishes a staged upload of this caller's in this registry, named by the URL
        go-buildkite joins from ``form.url`` and ``key``; consumed once. The URL is only
        parsed and compared with our own: never fetched."""
        caller.require(Scope.WRITE_PACKAGES)
        uploaded = self.files.uploaded_key(package_url)
        if uploaded is not None:
            return self._publish_posted(caller, org, registry, uploaded)
        named = self.urls.staged_upload(package_url)
        if named is None:
            raise ValidationFailed(
                [
                    FieldProblem(
                        "package_url",
                        "invalid",
                        "must be the URL of a file uploaded to this server's upload target "
                        "(see …/packages/upload)",
                    )
                ]
            )
        upload_id, filename = named
        found = _publishable(visible_registry(self.database, caller, org, registry))
        with self.database.writing() as session:
            taken = StagedUploadRepository(session).take(
                upload_id, found.id, caller.token_id, filename
            )
        if taken is None:
            raise NotFound("staged upload")
        try:
            staged = self.files.staged(taken.staged_name, taken.size, taken.sha256, taken.sha512)
        except FileNotFoundError:  # swept, or gone from the store: the upload is no more
            raise NotFound("staged upload") from None
        try:
            if taken.expires_at <= self.clock():
                raise AppError("The staged upload has expired: upload the file again", 422)
            return self._publish_staged(caller, org, found, staged, filename)
        finally:
            self.files.discard(staged)  # a no-op once the file was moved into place

    def _publish_posted(
        self, caller: Caller, org: str, registry: str, uploaded: str
    ) -> tuple[Package, RegistryRow]:
        """Publishes a file posted straight to the bucket, at ``uploads/<policy>.<signature>/
        <filename>``: only under our policy, unexpired, for this registry and this caller's
        token (anything else is as absent: 404); consumed by its publish."""
        found = _publishable(visible_registry(self.database, caller, org, registry))
        folder, _, filename = uploaded.partition("/")
        policy, _, signature = folder.partition(".")
        claims = verify(self.policy_key, policy, signature) if signature else None
        if (
            claims is None
            or claims["registry"] != str(found.id)
            or claims["token"] != str(caller.token_id)
            or not UPLOAD_FILENAME.fullmatch(filename)
        ):
            raise NotFound("staged upload")
        if int(claims["expires"]) <= self.clock().timestamp():
            raise AppError("The staged upload has expired: upload the file again", 422)
        try:
            staged = self.files.take_upload(
                uploaded, min(int(claims["max_bytes"]), self.max_upload_bytes)
            )
        except FileNotFoundError:
            raise NotFound("staged upload") from None
        except ValueError as exc:
            raise AppError(f"The package file is too large: {exc}", 413) from exc
        try:
            return self._publish_staged(caller, org, found, staged, filename)
        finally:
            self.files.discard(staged)
            self.files.drop_upload(uploaded)

    def discard_expired_uploads(self) -> int:
        """Removes staged uploads past their expiry, rows and files; how many."""
        with self.database.writing() as session:
            names = StagedUploadRepository(session).take_expired(self.clock())
        for name in names:
            self.files.forget(name)
        return len(names)

    def _publish_staged(
        self, caller: Caller, org: str, registry: RegistryRow, staged: StagedFile, filename: str
    ) -> tuple[Package, RegistryRow]:
        if registry.ecosystem == Ecosystem.JAVASCRIPT.value:
            # Name and version from its package.json; ``latest`` follows, as npm publish.
            if not filename.endswith(".tgz"):
                raise AppError(
                    "Validation failed: only npm tarballs (.tgz, as npm pack makes them) can "
                    "be published to a javascript registry",
                    422,
                )
            tarball = _read_npm(staged)
            sha1 = file_sha1(staged.path)
            describe_npm = _npm_package(caller, staged, tarball, sha1)
            return self._place(caller, org, registry.slug, staged, describe_npm, tags=("latest",))
        try:
            distribution = read_distribution(staged.path, filename)
        except BadDistribution as exc:
            raise AppError(f"Validation failed: {exc}", 422) from exc

        def describe(package_id: uuid.UUID, registry_id: uuid.UUID) -> Package:
            return Package(
                id=package_id,
                registry_id=registry_id,
                project=distribution.project,
                name=distribution.name,
                version=distribution.version,
                filename=filename,
                kind=distribution.kind,
                requires_python=distribution.requires_python,
                summary=distribution.summary,
                size=staged.size,
                sha256=staged.sha256,
                sha512=staged.sha512,
                uploaded_by_id=caller.user_id,
            )

        return self._place(caller, org, registry.slug, staged, describe)

    def copy(
        self, caller: Caller, org: str, registry: str, package_id: str, to: str
    ) -> tuple[Package, RegistryRow]:
        """A new package in registry ``to`` of the same organization and ecosystem, with
        the source's file (its own name for it: deleting either leaves the other)."""
        caller.require(Scope.READ_PACKAGES)
        caller.require(Scope.WRITE_PACKAGES)
        source = visible_registry(self.database, caller, org, registry)
        with self.database.reading() as session:
            original = _existing(PackageRepository(session), source.id, package_id)
        target = visible_registry(self.database, caller, org, to)
        if target.ecosystem != source.ecosystem:
            raise AppError(
                f"Validation failed: {target.slug} is a {target.ecosystem} registry and this "
                f"package is in a {source.ecosystem} one; a package is copied only into a "
                "registry of its own ecosystem",
                422,
            )
        try:
            staged = self.files.stage_copy(original.sha256, original.id, original.sha512)
        except FileNotFoundError:  # deleted since it was read
            raise NotFound("package") from None

        # What the file says (name, version, metadata …) is copied column for column; the
        # copy has its own id and time, its registry, and the copier as its uploader.
        own = {"id", "created_at", "registry_id", "uploaded_by_id"}
        described = {
            column.key: getattr(original, column.key)
            for column in sa_inspect(Package).column_attrs
            if column.key not in own
        }

        def describe(copy_id: uuid.UUID, registry_id: uuid.UUID) -> Package:
            return Package(
                id=copy_id, registry_id=registry_id, uploaded_by_id=caller.user_id, **described
            )

        try:
            return self._place(caller, org, to, staged, describe)
        finally:
            self.files.discard(staged)  # a no-op once the file was moved into place

    def _place(
        self,
        caller: Caller,
        org: str,
        registry: str,
        staged: StagedFile,
        describe: Callable[[uuid.UUID, uuid.UUID], Package],
        *,
        tags: tuple[str, ...] = (),
    ) -> tuple[Package, RegistryRow]:
        """Adds a package whose file is staged: the registry is held, the file name and
        its other spellings checked (for npm, its version), the file placed, then the row
        committed, with the dist-tags ``tags`` naming it."""
        package_id = new_id()
        placed = False
        filename = ""
        package: Package | None = None
        try:
            if self.files.remote:
                # An upload over the network never holds the write transaction (on SQLite,
                # every writer's): the object goes to the fresh id's key first, and is
                # removed below unless its row commits.
                self.files.commit(staged, package_id)
                placed = True
            with self.database.writing() as session:
                found = _publishable(
                    visible_registry(self.database, caller, org, registry, session)
                )
                # Held until the commit: a deletion of the registry (which locks it before
                # it reads the files to remove) waits for this publish, or this publish
                # waits for the deletion and finds no registry.
                if not RegistryRepository(session).hold(found.id):
                    raise NotFound("registry")
                package = describe(package_id, found.id)
                filename = package.filename
                packages = PackageRepository(session)
                dist_tags = DistTagRepository(session)
                if package.kind == NPM_KIND and dist_tags.version(
                    found.id, package.project, package.version
                ):
                    raise _version_published(package.version)
                if packages.get_by_filename(found.id, filename) is not None:
                    raise _already_published(filename)
                identity = distribution_identity(filename)
                existing_files = self.database.fetch_in(
                    session, PROJECT_FILES, registry_id=found.id, project=package.project
                )
                for existing in existing_files:
                    if distribution_identity(existing.filename) == identity:
                        raise _already_published(filename, existing.filename)
                packages.add(package)
                for tag in tags:
                    dist_tags.point(found.id, package.project, tag, package.id)
                # The file is in place before the row that names it is committed.
                if not placed:
                    self.files.commit(staged, package_id)
                    placed = True
        except BaseException as error:
            # The row was not committed: its file must not outlive it. (When the commit's
            # outcome is unknown the row may be there: the file stays, an orphan at worst.)
            if placed and not isinstance(error, CommitOutcomeUnknown):
                self.files.remove(staged.sha256, package_id)
            if is_foreign_key_violation(error):  # the registry is gone
                raise NotFound("registry") from error
            if isinstance(error, IntegrityError):  # a concurrent publish of the same file
                if package is not None and package.kind == NPM_KIND:
                    raise _version_published(package.version) from error
                raise _already_published(filename) from error
            raise
        return package, found

    def get(
        self, caller: Caller, org: str, registry: str, package_id: str
    ) -> tuple[Package, RegistryRow]:
        caller.require(Scope.READ_PACKAGES)
        found = visible_registry(self.database, caller, org, registry)
        with self.database.reading() as session:
            return _existing(PackageRepository(session), found.id, package_id), found

    def list(
        self, caller: Caller, org: str, registry: str, *, name: str | None, cursor: Cursor
    ) -> tuple[Window[Package], RegistryRow]:
        caller.require(Scope.READ_PACKAGES)
        found = visible_registry(self.database, caller, org, registry)
        project = name
        if name is not None and found.ecosystem != Ecosystem.JAVASCRIPT.value:
            project = canonicalize_name(name)  # npm names are compared as they are
        with self.database.reading() as session:
            query = PackageRepository(session).listing(found.id, project)
            return fetch_window(session, query, Package.id, cursor), found

    def delete(self, caller: Caller, org: str, registry: str, package_id: str) -> None:
        caller.require(Scope.DELETE_PACKAGES)
        with self.database.writing() as session:
            found = visible_registry(self.database, caller, org, registry, session)
            packages = PackageRepository(session)
            package = _existing(packages, found.id, package_id)
            sha256, owned_id = package.sha256, package.id
            packages.delete(package)
        # Only after the row is gone: a crash in between leaves an orphan, swept later.
        self.files.remove(sha256, owned_id)

    def projects(
        self, registry: RegistryRow, allowed: PackagePatterns | None = None
    ) -> "builtins.list[str]":
        """The projects an install may list (the registry's access already decided;
        ``allowed``: the names its token may see)."""
        names = [row.project for row in self.database.fetch(PROJECTS, registry_id=registry.id)]
        return names if allowed is None else allowed.filter(names, registry.ecosystem)

    def project_files(
        self, registry: RegistryRow, project: str, allowed: PackagePatterns | None = None
    ) -> "builtins.list[ProjectFile]":
        _visible(registry, project, allowed, "project")
        files = self.database.fetch(PROJECT_FILES, registry_id=registry.id, project=project)
        if not files:
            raise NotFound("project")
        return files

    def file(self, registry: RegistryRow, package_id: str, filename: str) -> StoredFile:
        """A file an install may download."""
        try:
            parsed = uuid.UUID(package_id)
        except ValueError:
            raise NotFound("file") from None
        rows = self.database.fetch(FILE_BY_ID, registry_id=registry.id, package_id=parsed)
        if not rows or rows[0].filename != filename:
            raise NotFound("file")
        return rows[0]

    def files_of_deleted_registry(
        self, session: Session, registry: RegistryRow, caller: Caller, context: RequestContext
    ) -> Callable[[], None]:
        """A registry's deletion step (``RegistryService``): its files are removed once
        the deletion has committed."""
        files = [(row.sha256, row.id) for row in PackageRepository(session).files_of(registry.id)]

        def remove() -> None:
            for sha256, package_id in files:
                self.files.remove(sha256, package_id)

        return remove

    def sweep_orphans(self, older_than_seconds: float = 3600) -> Sweep:
        with self.database.reading() as session:
            live = PackageRepository(session).all_files()
        return self.files.sweep(live, older_than_seconds)


def _publishable(registry: RegistryRow) -> RegistryRow:
    if registry.ecosystem not in (Ecosystem.PYTHON.value, Ecosystem.JAVASCRIPT.value):
        raise AppError(
            f"Validation failed: this is a {registry.ecosystem} registry; only python "
            "registries (wheels and sdists) and javascript ones (npm tarballs) accept packages",
            422,
        )
    return registry


def _not_npm(registry: RegistryRow) -> AppError:
    return AppError(
        f"Validation failed: this is a {registry.ecosystem} registry; npm publishes only to "
        "javascript registries",
        422,
    )


def _visible(registry: RegistryRow, name: str, allowed: PackagePatterns | None, noun: str) -> None:
    """A package its token may not see answers as absent: the same 404, no query."""
    if allowed is not None and not allowed.allows(normalized_name(name, registry.ecosystem)):
        raise NotFound(noun)


def _npm_registry(registry: RegistryRow) -> None:
    """npm's door serves javascript registries only: another is no npm registry at all."""
    if registry.ecosystem != Ecosystem.JAVASCRIPT.value:
        raise NotFound("package")


def _read_npm(staged: StagedFile) -> NpmTarball:
    try:
        tarball = read_tarball(staged.path)
    except BadDistribution as exc:
        raise AppError(f"Validation failed: {exc}", 422) from exc
    if len(tarball.filename) > 255:
        raise AppError(
            "Validation failed: the package's name and version together are too long "
            "(at most 250 characters)",
            422,
        )
    return tarball


def _npm_package(
    caller: Caller, staged: StagedFile, tarball: NpmTarball, sha1: str
) -> Callable[[uuid.UUID, uuid.UUID], Package]:
    summary = tarball.description
    if summary is not None:
        summary = " ".join(summary.split())
        if not summary or len(summary) > 512 or not summary.isprintable():
            summary = None

    def describe(package_id: uuid.UUID, registry_id: uuid.UUID) -> Package:
        return Package(
            id=package_id,
            registry_id=registry_id,
            project=tarball.name,
            name=tarball.name,
            version=tarball.version,
            filename=tarball.filename,
            kind=NPM_KIND,
            requires_python=None,
            summary=summary,
            size=staged.size,
            sha256=staged.sha256,
            sha512=staged.sha512,
            sha1=sha1,
            manifest=tarball.manifest,
            uploaded_by_id=caller.user_id,
        )

    return describe


def _version_published(version: str) -> AppError:
    """npm's words (npmjs answers them with 403; a conflict is a 409 here)."""
    return AppError(f"You cannot publish over the previously published versions: {version}.", 409)


def _already_published(filename: str, as_filename: str | None = None) -> AppError:
    spelled = f" as {as_filename}" if as_filename and as_filename != filename else ""
    return AppError(f"{filename} is already published in this registry{spelled}", 409)


def _existing(packages: PackageRepository, registry_id: uuid.UUID, package_id: str) -> Package:
    try:
        parsed = uuid.UUID(package_id)
    except ValueError:
        raise NotFound("package") from None
    package = packages.get(registry_id, parsed)
    if package is None:
        raise NotFound("package")
    return package
