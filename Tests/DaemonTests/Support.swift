// DaemonTests' names for the shared test support (AfterSalesTestSupport).
@_exported import AfterSalesTestSupport

typealias DaemonTestError = TestSupportError
