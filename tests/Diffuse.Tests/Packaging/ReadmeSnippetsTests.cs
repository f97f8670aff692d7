namespace Diffuse.Tests.Packaging;

public class ReadmeSnippetsTests
{
    private const string Readme = """
        # Title

        ## The library in a few lines

        ```csharp
        using Diffuse;
        using static System.Math;   // a comment

        using var model = Load("m");
        Console.WriteLine(Abs(-1));
        ```

        Text between.

        ```bash
        ./diffuse demo
        ```

        ### A sub-heading stays in the section

        ```csharp
        using Diffuse;
        using Alias = System.Text.StringBuilder;
        var x = new Alias();
        ```

        ## Next section

        ```csharp
        Outside();
        ```
        """;

    [Fact]
    public void BlocksAreTheCSharpOnesOfTheSectionOnly()
    {
        var blocks = ReadmeSnippets.Blocks(Readme, "## The library in a few lines");
        Assert.Equal(2, blocks.Count);
        Assert.StartsWith("using Diffuse;\n", blocks[0]);
        Assert.Contains("var x = new Alias();", blocks[1]);
        Assert.DoesNotContain(blocks, b => b.Contains("Outside", StringComparison.Ordinal) || b.Contains("./diffuse", StringComparison.Ordinal));
    }

    [Fact]
    public void ProgramHoistsEachUsingDirectiveOnceAndScopesEachBlock()
    {
        string program = ReadmeSnippets.Program(ReadmeSnippets.Blocks(Readme, "## The library in a few lines"), "Console.WriteLine(\"end\");");
        Assert.Equal("""
            using Diffuse;
            using static System.Math;
            using Alias = System.Text.StringBuilder;

            {
                using var model = Load("m");
                Console.WriteLine(Abs(-1));
            }
            {
                var x = new Alias();
            }
            Console.WriteLine("end");

            """.Replace("\r\n", "\n"), program);
    }

    [Fact]
    public void MissingSectionOrUnclosedBlockIsAnError()
    {
        Assert.Throws<InvalidOperationException>(() => ReadmeSnippets.Blocks(Readme, "## Nowhere"));
        Assert.Throws<InvalidOperationException>(() => ReadmeSnippets.Blocks("## S\n```csharp\nx();\n", "## S"));
    }
}
