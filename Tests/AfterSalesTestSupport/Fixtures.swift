// Cases to create, as requests: one the platform intervenes in at once, one it does not.
import AfterSalesProto
import Foundation

/// A signed, full refund-only case with a photo of a defect: the platform proposes at once.
public func interventionCase(order: String = "O-\(UUID().uuidString.prefix(8))", consumer: String = "C1", merchant: String = "M1",
                      category: String = "apparel") -> Aftersales_V1_CreateCaseRequest {
    .with {
        $0.orderID = order
        $0.orderLineID = "1"
        $0.consumerID = consumer
        $0.merchantID = merchant
        $0.category = category
        $0.type = .refundOnly
        $0.delivery = .signed
        $0.paidAmount = 12_900
        $0.refundAmount = 12_900
        $0.reason = "the zip broke on first use"
        $0.signals = .with {
            $0.evidence = [.with { $0.kind = .photo; $0.tags = [.defect]; $0.description_p = "broken zip" }]
        }
    }
}

/// A case the platform does not intervene in (nothing found).
public func plainCase(order: String = "O-\(UUID().uuidString.prefix(8))", consumer: String = "C1", merchant: String = "M1") -> Aftersales_V1_CreateCaseRequest {
    var request = interventionCase(order: order, consumer: consumer, merchant: merchant)
    request.signals = .init()
    return request
}

public func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// A refund-only request on signed goods; with `damaged` the judgement intervenes at once.
public func createRequest(_ order: String, consumer: String = "c-1", merchant: String = "m-1", damaged: Bool = false, delivery: Aftersales_V1_DeliveryState = .signed) -> Aftersales_V1_CreateCaseRequest {
    var request = Aftersales_V1_CreateCaseRequest()
    request.orderID = order
    request.consumerID = consumer
    request.merchantID = merchant
    request.category = "apparel"
    request.type = .refundOnly
    request.delivery = delivery
    request.paidAmount = 19_900
    request.refundAmount = 19_900
    request.reason = "torn seam"
    if damaged { request.signals.logisticsAnomalies = [.damagedInTransit] }
    return request
}
