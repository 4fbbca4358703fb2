/// A binary heap: `pop` returns the element that comes first under `before`.
package struct BinaryHeap<Element> {
    private var items: [Element] = []
    private let before: (Element, Element) -> Bool

    package init(by before: @escaping (Element, Element) -> Bool) { self.before = before }

    package var first: Element? { items.first }

    package mutating func push(_ x: Element) {
        items.append(x)
        var i = items.count - 1
        while i > 0 && before(items[i], items[(i - 1) / 2]) {
            items.swapAt(i, (i - 1) / 2)
            i = (i - 1) / 2
        }
    }

    @discardableResult
    package mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && before(items[l], items[m]) { m = l }
            if r < items.count && before(items[r], items[m]) { m = r }
            if m == i { return top }
            items.swapAt(i, m)
            i = m
        }
    }
}
