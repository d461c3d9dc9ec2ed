/// The release of this tree, shared by the daemon and its clients ("aftersalesd 0.1.0",
/// "aftersales-probe 0.1.0").
public let aftersalesRelease = "0.1.0"
