"""Mastodon's Sidekiq worker classes and the queue each runs on, and the class-to-queue mapping.

Source: the public mastodon/mastodon repository, ``app/workers/`` (each
class's ``sidekiq_options queue:``, else its parent worker's, else Sidekiq's
``default``), as catalogued in the design notes' ``reference/mastodon-workers.md``.
That catalogue was read file by file from commits between Mastodon 1.x and
main (4.6/4.7-alpha); it is **not one release**: it includes workers removed
since (OStatus, Keybase, E2EE) and a few from branches or forks. A removed
worker costs nothing here (it never shows up in a live instance's metrics).
``Scheduler::*`` classes are listed on ``scheduler``: they set no queue
themselves, but Mastodon's ``config/sidekiq.yml`` schedules them there.
ActionMailer jobs (``ActionMailer::MailDeliveryJob``, the ``wrapped`` class
Sidekiq's metrics are keyed by) run on ``mailers``.

A class not in the table is mapped by the class of each queue's oldest job,
when the caller passes those, or else stays unknown: never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping

TABLE_SOURCE = (
    "mastodon/mastodon app/workers/ (sidekiq_options queue:), files read at commits "
    "from 1.x to main (4.6/4.7-alpha); Scheduler::* on the scheduler queue as "
    "config/sidekiq.yml schedules them"
)
"""Where ``WORKER_QUEUES`` comes from, for answers that cite it."""

WORKER_QUEUES: Mapping[str, str] = {
    "ActionMailer::MailDeliveryJob": "mailers",
    "ActionMailer::DeliveryJob": "mailers",
    "AccountDeletionWorker": "pull",
    "AccountDomainBlockWorker": "default",
    "AccountMergingWorker": "pull",
    "AccountPurgeWorker": "pull",
    "AccountRefreshWorker": "pull",
    "ActivityPub::AccountBackfillWorker": "default",
    "ActivityPub::AccountRawDistributionWorker": "push",
    "ActivityPub::CollectionRawDistributionWorker": "push",
    "ActivityPub::DeliveryWorker": "push",
    "ActivityPub::DistributePollUpdateWorker": "push",
    "ActivityPub::DistributionWorker": "push",
    "ActivityPub::FeatureRequestWorker": "push",
    "ActivityPub::FetchAllRepliesWorker": "pull",
    "ActivityPub::FetchRepliesWorker": "pull",
    "ActivityPub::FollowersSynchronizationWorker": "push",
    "ActivityPub::ForwardDistributionWorker": "push",
    "ActivityPub::GroupDeliveryWorker": "push",
    "ActivityPub::GroupRawDistributionWorker": "push",
    "ActivityPub::GroupUpdateDistributionWorker": "push",
    "ActivityPub::LowPriorityDeliveryWorker": "pull",
    "ActivityPub::MigratedFollowDeliveryWorker": "push",
    "ActivityPub::MoveDistributionWorker": "push",
    "ActivityPub::PostUpgradeWorker": "pull",
    "ActivityPub::ProcessFeaturedItemWorker": "pull",
    "ActivityPub::ProcessingWorker": "ingress",
    "ActivityPub::QuoteRefreshWorker": "pull",
    "ActivityPub::QuoteRequestWorker": "push",
    "ActivityPub::RawDistributionWorker": "push",
    "ActivityPub::RefetchAndVerifyQuoteWorker": "pull",
    "ActivityPub::ReplyDistributionWorker": "push",
    "ActivityPub::StatusUpdateDistributionWorker": "push",
    "ActivityPub::SynchronizeFeaturedCollectionWorker": "pull",
    "ActivityPub::SynchronizeFeaturedCollectionsCollectionWorker": "pull",
    "ActivityPub::SynchronizeFeaturedTagsCollectionWorker": "pull",
    "ActivityPub::ThreadResolveWorker": "pull",
    "ActivityPub::UpdateDistributionWorker": "push",
    "ActivityPub::UpdateRemoteGroupAdminsWorker": "default",
    "ActivityPub::VerifyFeaturedItemWorker": "pull",
    "AddToPublicStatusesIndexWorker": "pull",
    "Admin::AccountDeletionWorker": "pull",
    "Admin::DistributeAnnouncementNotificationWorker": "default",
    "Admin::DistributeTermsOfServiceNotificationWorker": "default",
    "Admin::DomainPurgeWorker": "pull",
    "Admin::EmailSubscriptionsPurgeWorker": "default",
    "Admin::GroupDeletionWorker": "pull",
    "Admin::GroupSuspensionWorker": "pull",
    "Admin::GroupUnsuspensionWorker": "pull",
    "Admin::SuspensionWorker": "pull",
    "Admin::UnsuspensionWorker": "pull",
    "AfterAccountDomainBlockWorker": "default",
    "AfterRemoteFollowRequestWorker": "pull",
    "AfterRemoteFollowWorker": "pull",
    "AfterUnallowDomainWorker": "default",
    "AnnouncementPublishWorker": "default",
    "AuthorizeFollowWorker": "default",
    "BackupWorker": "pull",
    "BlockWorker": "default",
    "BootstrapTimelineWorker": "default",
    "BulkImportWorker": "pull",
    "CacheBusterWorker": "pull",
    "DailyWorker": "default",
    "DeleteMuteWorker": "default",
    "DeletionScheduleWorker": "default",
    "DigestMailerWorker": "mailers",
    "DistributionWorker": "default",
    "DomainBlockWorker": "default",
    "DomainClearMediaWorker": "pull",
    "EmailDistributionWorker": "default",
    "EnqueteResultTootWorker": "default",
    "Fasp::AccountSearchWorker": "fasp",
    "Fasp::AnnounceAccountLifecycleEventWorker": "fasp",
    "Fasp::AnnounceContentLifecycleEventWorker": "fasp",
    "Fasp::AnnounceNewContentWorker": "fasp",
    "Fasp::AnnounceTrendWorker": "fasp",
    "Fasp::BackfillWorker": "fasp",
    "Fasp::FollowRecommendationWorker": "fasp",
    "FeedInsertWorker": "default",
    "FetchReplyWorker": "pull",
    "FilteredNotificationCleanupWorker": "default",
    "FollowFromPublicListWorker": "default",
    "GenerateAnnualReportWorker": "default",
    "GroupDeletionWorker": "pull",
    "HubPingWorker": "default",
    "Import::RelationshipWorker": "pull",
    "Import::RowWorker": "pull",
    "ImportWorker": "pull",
    "KeybaseProofWorker": "pull",
    "LinkCrawlWorker": "pull",
    "LocalNotificationWorker": "default",
    "Maintenance::DestroyMediaWorker": "pull",
    "Maintenance::RedownloadAccountMediaWorker": "pull",
    "Maintenance::UncacheMediaWorker": "pull",
    "Maintenance::UncachePreviewWorker": "pull",
    "MentionResolveWorker": "pull",
    "MoveWorker": "default",
    "MultiMergeIntoOwnHomeWorker": "default",
    "MuteWorker": "default",
    "PollExpirationNotifyWorker": "default",
    "PostProcessMediaWorker": "default",
    "PublishAnnouncementReactionWorker": "default",
    "PublishScheduledAnnouncementWorker": "default",
    "PublishScheduledStatusWorker": "default",
    "Pubsubhubbub::ConfirmationWorker": "push",
    "Pubsubhubbub::DeliveryWorker": "push",
    "Pubsubhubbub::DistributionWorker": "push",
    "Pubsubhubbub::RawDistributionWorker": "push",
    "Pubsubhubbub::SubscribeWorker": "push",
    "Pubsubhubbub::UnsubscribeWorker": "push",
    "PurgeCustomEmojiWorker": "default",
    "PushConversationWorker": "default",
    "PushEncryptedMessageWorker": "default",
    "PushUpdateWorker": "default",
    "RedownloadAvatarWorker": "pull",
    "RedownloadHeaderWorker": "pull",
    "RedownloadMediaWorker": "pull",
    "RefollowWorker": "pull",
    "RegenerationWorker": "default",
    "RemoteAccountRefreshWorker": "pull",
    "RemovalWorker": "default",
    "RemoveFeaturedTagWorker": "default",
    "RemoveFromPublicStatusesIndexWorker": "default",
    "ResolveAccountWorker": "pull",
    "Scheduler::AccountsStatusesCleanupScheduler": "scheduler",
    "Scheduler::Admin::DashboardCacheWarmerScheduler": "scheduler",
    "Scheduler::AutoCloseRegistrationsScheduler": "scheduler",
    "Scheduler::BackupCleanupScheduler": "scheduler",
    "Scheduler::CollectionItemCleanupScheduler": "scheduler",
    "Scheduler::CountingScheduler": "scheduler",
    "Scheduler::DeadRecordsCleanupScheduler": "scheduler",
    "Scheduler::DeletionScheduler": "scheduler",
    "Scheduler::DoorkeeperCleanupScheduler": "scheduler",
    "Scheduler::EmailDomainBlockRefreshScheduler": "scheduler",
    "Scheduler::EmailScheduler": "scheduler",
    "Scheduler::Fasp::FollowRecommendationCleanupScheduler": "scheduler",
    "Scheduler::Fasp::RefreshPreviewCardTrendsScheduler": "scheduler",
    "Scheduler::Fasp::RefreshStatusTrendsScheduler": "scheduler",
    "Scheduler::Fasp::RefreshTagTrendsScheduler": "scheduler",
    "Scheduler::FeedCleanupScheduler": "scheduler",
    "Scheduler::FollowRecommendationsScheduler": "scheduler",
    "Scheduler::IPBlockURLScheduler": "scheduler",
    "Scheduler::IPBlocklistURLScheduler": "scheduler",
    "Scheduler::IndexingScheduler": "scheduler",
    "Scheduler::InstanceRefreshScheduler": "scheduler",
    "Scheduler::IpCleanupScheduler": "scheduler",
    "Scheduler::IpSpamlistUrlsScheduler": "scheduler",
    "Scheduler::MediaCleanupScheduler": "scheduler",
    "Scheduler::ModerationListSynchronizationScheduler": "scheduler",
    "Scheduler::NotificationsCleanupScheduler": "scheduler",
    "Scheduler::PendingAccountsNotificationScheduler": "scheduler",
    "Scheduler::PgheroScheduler": "scheduler",
    "Scheduler::PreviewCardsCleanupScheduler": "scheduler",
    "Scheduler::RepairRemoteCollectionsScheduler": "scheduler",
    "Scheduler::ScheduledStatusesScheduler": "scheduler",
    "Scheduler::SelfDestructScheduler": "scheduler",
    "Scheduler::SoftwareUpdateCheckScheduler": "scheduler",
    "Scheduler::StatusesCountWritebackScheduler": "scheduler",
    "Scheduler::SubscriptionsCleanupScheduler": "scheduler",
    "Scheduler::SubscriptionsScheduler": "scheduler",
    "Scheduler::SuspendedUserCleanupScheduler": "scheduler",
    "Scheduler::TorExitNodeScheduler": "scheduler",
    "Scheduler::TranslationServiceScheduler": "scheduler",
    "Scheduler::TrendTagScheduler": "scheduler",
    "Scheduler::TrendTagsUpdateScheduler": "scheduler",
    "Scheduler::TrendingTagsScheduler": "scheduler",
    "Scheduler::Trends::RefreshScheduler": "scheduler",
    "Scheduler::Trends::ReviewNotificationsScheduler": "scheduler",
    "Scheduler::UserCleanupScheduler": "scheduler",
    "Scheduler::UserRegistrationProtectionScheduler": "scheduler",
    "Scheduler::VacuumScheduler": "scheduler",
    "StatusesCountWritebackWorker": "default",
    "UnfollowFollowWorker": "pull",
    "Web::PushNotificationWorker": "push",
    "Webhooks::DeliveryWorker": "push",
}
"""Mastodon worker class → the queue it is enqueued on (see the module docstring for the source)."""

MAX_CLASS_CHARS = 256
"""A class name longer than this is not a Ruby class name Mastodon uses: it is never mapped."""


def queue_of(name: str, oldest: Mapping[str, str] | None = None) -> str | None:
    """Return the queue a job class runs on, or None when it is unknown.

    The table decides first; then ``oldest`` (queue → class of that queue's
    oldest job, as the snapshot reads it): a class found at the tail of
    exactly one queue is taken to run there. A class seen at the tail of
    several queues, or nowhere, stays unknown.
    """
    if len(name) > MAX_CLASS_CHARS:
        return None
    known = WORKER_QUEUES.get(name)
    if known is not None:
        return known
    if not oldest:
        return None
    found = {queue for queue, job_class in oldest.items() if job_class == name}
    return found.pop() if len(found) == 1 else None
