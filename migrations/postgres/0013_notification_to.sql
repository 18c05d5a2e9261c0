-- To whom the notification letter went (issue 31): betrokkene, ouders-voogd, familie, inrichting.
ALTER TABLE cases ADD COLUMN notification_to TEXT;
